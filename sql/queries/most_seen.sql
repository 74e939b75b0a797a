-- Individuals by number of sightings, most seen first.
SELECT individual_id, count(*) AS sightings
FROM sightings
GROUP BY individual_id
ORDER BY sightings DESC, individual_id
LIMIT $limit;

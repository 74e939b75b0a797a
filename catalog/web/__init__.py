"""The browser review (`finprint review --web`): a person settles the night's doubts, one key per decision."""

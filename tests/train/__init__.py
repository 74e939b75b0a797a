"""Tests of the training code (the train extra: torch and torchvision)."""

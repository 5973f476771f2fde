"""The teacher's review page: flagged answers, a crop of each, one click to correct."""

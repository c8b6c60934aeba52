"""The notes' SQL migrations, one folder per dialect."""

"""The users' SQL migrations, one folder per dialect (`app.db.Migrations` applies them)."""

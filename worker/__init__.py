"""The Celery worker: runs backups by id. It never imports Flask."""

"""The demo clinic (examples/clinic.sql) as a Python application on pg_safeguard."""

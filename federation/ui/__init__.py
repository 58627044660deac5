"""The web UI served by every server under ``/ui``: server-rendered pages (Jinja2) made live
with htmx, styled with Pico CSS; both are vendored under ``static/`` so no page reaches the
internet."""

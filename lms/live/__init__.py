"""The live layer's services for the edges: access to rooms, announcements."""

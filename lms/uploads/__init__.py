"""Video uploads: the tus 1.0 protocol rules, the bytes on the media volume, the service."""

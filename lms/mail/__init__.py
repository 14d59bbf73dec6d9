"""Mail: message templates and their rendering, and the transports that send them."""

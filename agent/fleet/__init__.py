"""The fleet operator's side: a collector that keeps every device's reports, and a dashboard on them."""

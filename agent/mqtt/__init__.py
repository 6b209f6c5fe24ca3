"""MQTT: payload envelope and topics, the durable outbox, the device link, remote commands, event
names, where reports go, and the fleet operator side.
"""

"""MQTT: payload envelope and topics, the durable outbox, the device link, remote commands, where
reports go, and the fleet operator side.
"""

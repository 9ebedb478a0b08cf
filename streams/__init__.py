"""The Kafka toolkit: settings, errors, codec, topics, messaging, batching, transport, the
request-reply clients, logs and Sentry reporting.

Layer 2 of 6: it imports only ``schemas``. Import its modules by name
(``streams.client.SearchClient``, ``streams.settings.Settings``).
"""

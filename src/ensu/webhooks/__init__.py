"""Webhooks: signed JSON deliveries of the service's events to subscribed URLs."""

"""Delivery of alerts and chat triggers to the tools CX teams use (``frictionwatch deliver``).

- ``policy``: pure decisions (retry schedule, status classes, ``Retry-After``, expiry,
  signatures, each tool's message), no I/O.
- ``sender``: each destination's HTTP request, and sending one with retries (aiohttp).
- ``journal``: the bounded record of recent deliveries, on disk, that makes a redelivery
  after a crash harmless.
- ``runner``: the Kafka loop (its own consumer group), committing a document's offset only
  once its deliveries are done.

What each API documents, and how it is used here:

- Slack incoming webhooks (https://api.slack.com/messaging/webhooks): ``POST`` JSON with
  ``text`` (the notification fallback) and Block Kit ``blocks`` to the webhook URL, no other
  auth. Rate limit about one message a second per webhook; over it, ``429 Too Many Requests``
  with ``Retry-After`` in seconds (https://api.slack.com/apis/rate-limits). No idempotency
  key exists: duplicates are kept out on our side only (the journal).
- Intercom "Create a message" (https://developers.intercom.com/docs/references/rest-api/
  api.intercom.io/messages/createmessage): ``POST /messages``, ``Authorization: Bearer
  <token>``, ``Intercom-Version`` header; body ``message_type`` ("inapp"), ``body``,
  ``from: {type: admin, id}``, ``to: {type: user, id | user_id | email}``; a contact not yet
  messageable answers 404. Over the rate limit: ``429`` with ``X-RateLimit-Reset`` (a Unix
  time; https://developers.intercom.com/docs/references/rest-api/errors/rate-limiting),
  honoured like ``Retry-After``. Intercom documents no idempotency key for messages: the id is
  still sent as ``Idempotency-Key`` (ignored by Intercom), and duplicates are kept out on our
  side (the journal).
- Zendesk "Create Ticket" (https://developer.zendesk.com/api-reference/ticketing/tickets/
  tickets/#create-ticket): ``POST /api/v2/tickets.json``, basic auth ``{email}/token:{token}``
  (API token); ``Idempotency-Key`` header (https://developer.zendesk.com/api-reference/
  ticketing/introduction/#idempotency): a repeat with the same key returns the first ticket
  instead of a second one; a repeat while the first is in flight gets 409, retried. Over the
  rate limit: ``429`` with ``Retry-After`` in seconds (https://developer.zendesk.com/api-
  reference/introduction/rate-limits/). The ticket's ``external_id`` is the document's id too.
- Generic webhook (ours): the CloudEvents document as the body (``application/cloudevents+
  json``), ``Idempotency-Key: <id>``, ``X-Frictionwatch-Timestamp: <unix seconds>``,
  ``X-Frictionwatch-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>``.
  A receiver recomputes it over the raw body, compares in constant time, rejects old
  timestamps (replays) and drops ids it has seen.
"""

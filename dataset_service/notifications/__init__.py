"""Notifications: an in-app list per user (the hub home and the service's pages show it, with an unread
count) and e-mail through an SMTP server the operator configures.

- ``models.Notification``: one row per recipient and event; ``read_at`` for the in-app list,
  ``emailed_at`` / ``email_error`` for the mail outbox.
- ``service.Notifier``: ``notify(s, users, kind, title, body, link)`` adds rows inside the caller's
  transaction (a rolled-back action notifies nobody); ``committee``/``project_members`` resolve
  recipients through the hub; ``expiry_sweep`` warns projects whose grant ends soon (once per grant).
- ``mail.Mailer``: sends the rows not yet e-mailed (``smtplib``; STARTTLS and login when configured);
  ``worker.NotificationWorker`` runs the mailer and the expiry sweep in a thread of the service.
- ``api``: ``GET /api/notifications``, ``GET /api/notifications/unread-count``,
  ``POST /api/notifications/read``; the page ``/notifications``.

Events: a new (or resubmitted) request → the committee (not members of the request's project); a
decision or "ask for changes" → the requester; a grant that ends within ``expiry_warning_days`` → the
project's members; an export reviewed → its requester; a workspace stopped by revocation, invalidation
or expiry → its user.
"""

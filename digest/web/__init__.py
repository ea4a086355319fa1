"""The web app: subscribe (double opt-in), confirm, feedback, paper pages, preferences, unsubscribe,
Slack actions and health. ``digest.web.app.create_app(settings, db)`` builds it."""

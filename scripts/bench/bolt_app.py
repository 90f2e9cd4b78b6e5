"""The ingress benchmark's baseline: a minimal Slack Bolt for Python app, as a team would deploy it.

Served as ASGI under uvicorn (`uvicorn bolt_app:api`). It verifies each request's signature (Bolt's default),
acknowledges `app_mention` events and stores nothing. Run by scripts/bench-ingress.
"""

import os

from slack_bolt import App
from slack_bolt.adapter.asgi import SlackRequestHandler

app = App(
    signing_secret=os.environ["SLACK_SIGNING_SECRET"],
    token="xoxb-benchmark",
    token_verification_enabled=False,
)


@app.event("app_mention")
def on_mention(event):
    # Acknowledged by Bolt before this runs; nothing is stored.
    pass


api = SlackRequestHandler(app)

"""The ingress benchmark's baseline: a minimal Slack Bolt for Python app, as a team would deploy it.

Served as ASGI under uvicorn (`uvicorn bolt_app:api`). It verifies each request's signature (Bolt's default),
acknowledges `app_mention` events and stores nothing. Run by scripts/bench-ingress.
"""

import os

from slack_bolt import App
from slack_bolt.adapter.asgi import SlackRequestHandler
from slack_bolt.authorization import AuthorizeResult


def authorize(enterprise_id, team_id, logger):
    # What an installation store returns; answered locally (the benchmark machine has no route to Slack, and a
    # single-token app would call auth.test on its first request).
    return AuthorizeResult(
        enterprise_id=enterprise_id,
        team_id=team_id,
        bot_token="xoxb-benchmark",
        bot_id="BBENCH",
        bot_user_id="UBENCHBOT",
    )


app = App(signing_secret=os.environ["SLACK_SIGNING_SECRET"], authorize=authorize)


@app.event("app_mention")
def on_mention(event):
    # Acknowledged by Bolt before this runs; nothing is stored.
    pass


api = SlackRequestHandler(app)

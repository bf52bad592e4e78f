"""gstack's OAuth2 authorization server (oauthlib) and the checks every API call passes."""

import logging

# oauthlib logs tokens, codes and client secrets at DEBUG; they must never reach a log.
logging.getLogger("oauthlib").setLevel(logging.INFO)

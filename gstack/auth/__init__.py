"""gstack's OAuth2 authorization server (oauthlib) and the checks every API call passes."""

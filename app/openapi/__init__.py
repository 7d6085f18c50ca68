"""The API's self-description: the OpenAPI document completed with what FastAPI cannot infer
(examples, field descriptions, enums, the errors each operation really answers, the webhook's
raw body) and the /docs and /redoc pages served offline."""

"""The OpenAI client the agent streams through: `openai.AsyncOpenAI`, parsing each event
of a streamed response by its `type`.

The OpenAI client turns every streamed Responses event into its pydantic model by
validating it against `ResponseStreamEvent`, the union of some fifty event classes: pydantic
tries the members in turn (the union's discriminator is the client's own annotation, which
pydantic does not read), and the adapter is looked up in a cache keyed by that union, which
Python's typing hashes anew, member by member, on every lookup. That costs about 80-100 µs
per event, twenty times the validation of the one class that matches, and a reply is one
event per token (docs/benchmarks.md). `ModelClient` validates such an event against the
class its `type` names: the same validation of the same class, the same object. Any other
data, an unknown type, or an event that does not validate goes the stock way (which falls
back to a lenient construction).
"""

from typing import Any, Literal, get_args, get_origin

import openai
from openai.types.responses import ResponseStreamEvent
from pydantic import BaseModel, ValidationError


def _event_classes(union: Any) -> dict[str, type[BaseModel]]:
    """The members of an (annotated) union of event models, by the value of their `type`."""
    members = get_args(union)
    if members and get_origin(union) is not None and not isinstance(members[0], type):
        members = get_args(members[0])  # Annotated[Union[...], ...]
    classes: dict[str, type[BaseModel]] = {}
    for member in members:
        field = getattr(member, "model_fields", {}).get("type")
        if field is not None and get_origin(field.annotation) is Literal:
            for value in get_args(field.annotation):
                classes[value] = member
    return classes


STREAM_EVENT_CLASSES = _event_classes(ResponseStreamEvent)


class ModelClient(openai.AsyncOpenAI):
    def _process_response_data(self, *, data: object, cast_to: Any, response: Any) -> Any:
        if cast_to is ResponseStreamEvent and isinstance(data, dict):
            event_class = STREAM_EVENT_CLASSES.get(data.get("type"))  # type: ignore[arg-type]
            if event_class is not None:
                try:
                    return event_class.model_validate(data)
                except ValidationError:
                    pass  # the stock client's way, below
        return super()._process_response_data(data=data, cast_to=cast_to, response=response)

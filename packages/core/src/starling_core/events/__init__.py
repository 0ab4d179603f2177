"""Events between services: an outbox written in the service's own transactions, a relay that delivers
it to the broker at least once and in order per key, and consumers whose inbox makes each event take
effect once. See packages/core/README.md, "Events".

The Kafka adapter (`starling_core.events.kafka`) is imported only where a broker is configured.
"""

from starling_core.events.broker import Broker, Message, Publisher, Received, Subscription
from starling_core.events.consumer import Consumer, EventFailed, Outcome
from starling_core.events.envelope import Event, EventType, RawEvent
from starling_core.events.inbox import Inbox
from starling_core.events.outbox import Outbox
from starling_core.events.relay import Relay
from starling_core.events.runtime import Events
from starling_core.events.topics import dead_letter_topic

__all__ = [
    "Broker",
    "Consumer",
    "Event",
    "EventFailed",
    "EventType",
    "Events",
    "Inbox",
    "Message",
    "Outbox",
    "Outcome",
    "Publisher",
    "RawEvent",
    "Received",
    "Relay",
    "Subscription",
    "dead_letter_topic",
]

import pyarrow as pa

from vigil.bus.destination import Destination, Overflow
from vigil.bus.fanout import Bus
from vigil.model import LOGS_SCHEMA, POINTS_SCHEMA, logs_from_rows


async def test_a_destination_with_schemas_takes_only_those_batches() -> None:
    bus = Bus()
    everything = bus.add(Destination("store", 1 << 20, Overflow.BLOCK))
    logs = bus.add(Destination("tail", 1 << 20, Overflow.BLOCK), [LOGS_SCHEMA])
    points = pa.table([pa.array(["a.b"]), pa.array([1], pa.uint32()), pa.array([1.0])],
                      schema=POINTS_SCHEMA)  # fmt: skip
    entries = logs_from_rows([{"ts": 1000, "host": "h", "app": "a", "kind": "line"}])
    await bus.publish(points)
    await bus.publish(entries)
    assert len(everything) == 2 and len(logs) == 1
    delivery = await logs.get(timeout=1)
    assert delivery is not None and delivery.batch.schema.equals(LOGS_SCHEMA)

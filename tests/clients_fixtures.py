"""Hand-made reads by many client processes (``clients`` >= 1), shared by the unit tests
of the results (statistics, summary, compare) and of the clients figure.

Each method reads the 100-image store of ``results_fixtures`` (32x32) shuffled and cold
by the client configurations of ``CONFIGS``; its per-client images/s at a configuration
is its one-client images/s (``ONE_CLIENT``) times its efficiency there (``efficiency``),
and each store (``repeat``) moves it by ``STORE_SCALE`` (the store's speed) and the
efficiency at the most clients by ``STORE_EFFICIENCY`` (so the efficiency per store is
known exactly: ``efficiency x (1 + STORE_EFFICIENCY[store])``).
"""

from __future__ import annotations

from results_fixtures import FACTORS, row

# (nodes, per_node) of each client configuration: 1, 2 and 4 clients.
CONFIGS = ((1, 1), (1, 2), (2, 2))
IMAGES = 100  # the epoch: every client's share together
ONE_CLIENT = {"npy": 1000.0, "png": 200.0}
STORE_SCALE = FACTORS  # per store
STORE_EFFICIENCY = (0.01, -0.01, 0.0)  # per store, at the most clients only
# Per method: its per-client efficiency at 2 and at 4 clients.
HOLDS = {"npy": {2: 0.95, 4: 0.9}, "png": {2: 0.7, 4: 0.5}}
TIED = {"npy": {2: 0.95, 4: 0.9}, "png": {2: 0.92, 4: 0.9}}
T0 = 1_800_000_000.0


def hosts(nodes: int) -> str:
    return ";".join(f"node{n}" for n in range(1, nodes + 1))


def client_rows(
    efficiency: dict = HOLDS,
    *,
    configs=CONFIGS,
    cache: str = "cold",
    pattern: str = "shuffled",
    launch: str = "srun",
    busy: set[str] = frozenset(),
) -> list[dict]:
    """Rows of the many-clients reads: one timed read per method, configuration and
    store; methods in ``busy`` ran beside others' CPU work at the most clients."""
    rows = []
    clock = T0
    most = max(nodes * per_node for nodes, per_node in configs)
    for method, one in ONE_CLIENT.items():
        for nodes, per_node in configs:
            clients = nodes * per_node
            for repeat, scale in enumerate(STORE_SCALE, start=1):
                kept = efficiency[method].get(clients, 1.0)
                if clients == most:
                    kept *= 1 + STORE_EFFICIENCY[repeat - 1]
                per_client = one * scale * kept
                seconds = IMAGES / (per_client * clients)
                foreign = 0.9 * seconds if method in busy and clients == most else 0.0
                rows.append(
                    row(
                        method=method,
                        operation="read",
                        cutoff=100,
                        repeat=repeat,
                        cache=cache,
                        eviction="fadvise" if cache == "cold" else "none",
                        read_pattern=pattern,
                        readahead="on",
                        readers=1,
                        nodes=nodes,
                        clients=clients,
                        images_read=IMAGES,
                        bytes_requested=IMAGES * 3072,
                        device_read_bytes=IMAGES * 4096 if cache == "cold" else 0,
                        seconds=seconds,
                        images_per_s_per_client=IMAGES / seconds / clients,
                        client_hosts=hosts(nodes),
                        client_launch=launch,
                        client_seconds=";".join([f"{seconds:.6f}"] * clients),
                        client_device_read_bytes=";".join(["1024"] * clients),
                        foreign_cpu_seconds=foreign,
                        foreign_cpu_resolution_seconds=0.0,
                        foreign_cpu_span_seconds=seconds,
                        bytes_on_disk=1,
                        bytes_apparent=1,
                        n_files=1,
                        cached_fraction=0.0 if cache == "cold" else 1.0,
                        t_start_unix=clock,
                        t_end_unix=clock + seconds,
                    )
                )
                clock += seconds + 1
    return rows


def expected_efficiency(efficiency: dict, method: str, clients: int = 4) -> list[float]:
    """The efficiency of each store, as the rows were made."""
    return sorted(efficiency[method][clients] * (1 + STORE_EFFICIENCY[store]) for store in range(3))

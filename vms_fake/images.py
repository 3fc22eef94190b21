"""The simulated registry's images and the guest each image boots.

What an image *is* to the simulator lives where it lives for real: on the disk. The
first bytes of ``disk.img`` carry a small header naming the guest OS and whether the
Tart Guest Agent is installed, so clones carry it along; an empty disk (``create
--linux``) has no header and boots nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

GUEST_HEADER_MAGIC = b"FAKE-TART-GUEST "
#: Bytes of disk.img reserved for the header.
GUEST_HEADER_SIZE = 4096

GB = 1000**3
MIB = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Guest:
    """The operating system installed on a disk, as far as the simulator cares."""

    os: str  # "darwin" or "linux"
    agent: bool  # the Tart Guest Agent (exec, ip --resolver agent)

    def header(self) -> bytes:
        payload = json.dumps({"os": self.os, "agent": self.agent}).encode()
        return GUEST_HEADER_MAGIC + payload + b"\n"

    @classmethod
    def from_header(cls, data: bytes) -> Guest | None:
        if not data.startswith(GUEST_HEADER_MAGIC):
            return None
        line = data[len(GUEST_HEADER_MAGIC) :].split(b"\n", 1)[0]
        try:
            fields = json.loads(line)
            return cls(os=str(fields["os"]), agent=bool(fields["agent"]))
        except (ValueError, KeyError, TypeError):
            return None


@dataclasses.dataclass(frozen=True)
class Image:
    """An image the simulated registry serves under ``name`` (``host/namespace:tag``)."""

    name: str
    os: str = "darwin"
    agent: bool = True
    disk_gb: int = 50
    cpu: int = 4
    memory_mib: int = 8192
    compressed_gb: float = 25.0

    @property
    def guest(self) -> Guest:
        return Guest(self.os, self.agent)

    @property
    def digest(self) -> str:
        """A stable manifest digest derived from the image's definition."""
        text = json.dumps(dataclasses.asdict(self), sort_keys=True).encode()
        return "sha256:" + hashlib.sha256(text).hexdigest()

    @property
    def mac_address(self) -> str:
        """The MAC baked into the image's config (what a first clone keeps)."""
        raw = bytearray(hashlib.sha256(self.digest.encode()).digest()[:6])
        raw[0] = (raw[0] | 0x02) & 0xFE  # locally administered, unicast
        return ":".join(f"{octet:02x}" for octet in raw)

    def to_json(self) -> dict[str, object]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Image:
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in fields})  # type: ignore[arg-type]


def _builtin() -> tuple[Image, ...]:
    images: list[Image] = []
    for release in ("tahoe", "sequoia", "sonoma"):
        for flavour in ("base", "vanilla", "xcode"):
            images.append(
                Image(
                    name=f"ghcr.io/cirruslabs/macos-{release}-{flavour}:latest",
                    agent=flavour != "vanilla",
                    disk_gb=120 if flavour == "xcode" else 50,
                    compressed_gb=60.0 if flavour == "xcode" else 25.0,
                )
            )
    for distro in ("ubuntu", "debian", "fedora"):
        images.append(
            Image(
                name=f"ghcr.io/cirruslabs/{distro}:latest",
                os="linux",
                disk_gb=20,
                memory_mib=4096,
                compressed_gb=1.5,
            )
        )
    return tuple(images)


#: Images every simulated registry serves; add more with ``TartHome.add_image``.
BUILTIN_IMAGES: tuple[Image, ...] = _builtin()

"""The device catalogue the double serves, and AI Hub's device-filter semantics.

Names, chipsets, OS versions, vendors and form factors come from
`reference/aihub/data/devices_and_chipsets.v0.46.1.yaml` (quic/ai-hub-models v0.46.1). The
"(Family)" names and the second OS version of a few older phones come from the real `get_devices()`
printout in `reference/aihub/data/aihub_get_devices_names_2024-06.txt`, where the same name appears twice.

The attribute *vocabulary* (`chipset:`, `os:`, `vendor:`, `format:`, `framework:`, `hexagon:`,
`htp-supports-fp16:`) is the one SDK_SURFACE.md §2 lists. No public source gives one real device's full
attribute list, so which frameworks, hexagon versions and fp16 flags each device gets is modelled from
public chipset specs: good enough to exercise filters, not a statement about the live service.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from packaging.version import InvalidVersion, Version

# (name, os version, chipset, vendor, form factor, OS family)
_TABLE: list[tuple[str, str, str, str, str, str]] = [
    ("Google Pixel 3", "10", "qualcomm-snapdragon-845", "google", "Phone", "Android"),
    ("Google Pixel 3a", "10", "qualcomm-snapdragon-670", "google", "Phone", "Android"),
    ("Google Pixel 3 XL", "10", "qualcomm-snapdragon-845", "google", "Phone", "Android"),
    ("Google Pixel 4", "10", "qualcomm-snapdragon-855", "google", "Phone", "Android"),
    ("Google Pixel 4a", "11", "qualcomm-snapdragon-730g", "google", "Phone", "Android"),
    ("Google Pixel 5", "11", "qualcomm-snapdragon-765g", "google", "Phone", "Android"),
    ("Samsung Galaxy Tab S7", "11", "qualcomm-snapdragon-865+", "samsung", "Tablet", "Android"),
    ("Samsung Galaxy Tab A8 (2021)", "11", "qualcomm-snapdragon-429", "samsung", "Tablet", "Android"),
    ("Samsung Galaxy S21 (Family)", "11", "qualcomm-snapdragon-888", "samsung", "Phone", "Android"),
    ("Samsung Galaxy S21 (Family)", "12", "qualcomm-snapdragon-888", "samsung", "Phone", "Android"),
    ("Samsung Galaxy S21", "11", "qualcomm-snapdragon-888", "samsung", "Phone", "Android"),
    ("Samsung Galaxy S21", "12", "qualcomm-snapdragon-888", "samsung", "Phone", "Android"),
    ("Samsung Galaxy S21+", "11", "qualcomm-snapdragon-888", "samsung", "Phone", "Android"),
    ("Samsung Galaxy S21 Ultra", "11", "qualcomm-snapdragon-888", "samsung", "Phone", "Android"),
    ("Samsung Galaxy S21 Ultra", "12", "qualcomm-snapdragon-888", "samsung", "Phone", "Android"),
    ("Xiaomi Redmi Note 10 5G", "11", "qualcomm-snapdragon-678", "oneplus", "Phone", "Android"),
    ("Google Pixel 3a XL", "12", "qualcomm-snapdragon-670", "google", "Phone", "Android"),
    ("Google Pixel 5a 5G", "12", "qualcomm-snapdragon-765g", "google", "Phone", "Android"),
    ("Samsung Galaxy A73 5G", "12", "qualcomm-snapdragon-778g", "samsung", "Phone", "Android"),
    ("QCS8550 (Proxy)", "12", "qualcomm-qcs8550-proxy", "qualcomm", "IoT", "Android"),
    ("Samsung Galaxy S22 (Family)", "12", "qualcomm-snapdragon-8gen1", "samsung", "Phone", "Android"),
    ("Samsung Galaxy S22 Ultra 5G", "12", "qualcomm-snapdragon-8gen1", "samsung", "Phone", "Android"),
    ("Samsung Galaxy S22 5G", "12", "qualcomm-snapdragon-8gen1", "samsung", "Phone", "Android"),
    ("Samsung Galaxy S22 5G", "13", "qualcomm-snapdragon-8gen1", "samsung", "Phone", "Android"),
    ("Samsung Galaxy S22+ 5G", "12", "qualcomm-snapdragon-8gen1", "samsung", "Phone", "Android"),
    ("Samsung Galaxy Tab S8", "12", "qualcomm-snapdragon-8gen1", "samsung", "Tablet", "Android"),
    ("Xiaomi 12 (Family)", "12", "qualcomm-snapdragon-8gen1", "xiaomi", "Phone", "Android"),
    ("Xiaomi 12", "12", "qualcomm-snapdragon-8gen1", "xiaomi", "Phone", "Android"),
    ("Xiaomi 12 Pro", "12", "qualcomm-snapdragon-8gen1", "xiaomi", "Phone", "Android"),
    ("QCS8450 (Proxy)", "13", "qualcomm-qcs8450-proxy", "qualcomm", "XR", "Android"),
    ("XR2 Gen 2 (Proxy)", "13", "qualcomm-qcs8450-proxy", "qualcomm", "XR", "Android"),
    ("Samsung Galaxy S23 (Family)", "13", "qualcomm-snapdragon-8gen2", "samsung", "Phone", "Android"),
    ("Samsung Galaxy S23", "13", "qualcomm-snapdragon-8gen2", "samsung", "Phone", "Android"),
    ("Samsung Galaxy S23+", "13", "qualcomm-snapdragon-8gen2", "samsung", "Phone", "Android"),
    ("Samsung Galaxy S23 Ultra", "13", "qualcomm-snapdragon-8gen2", "samsung", "Phone", "Android"),
    ("Samsung Galaxy S24 (Family)", "14", "qualcomm-snapdragon-8gen3", "samsung", "Phone", "Android"),
    ("Samsung Galaxy S24", "14", "qualcomm-snapdragon-8gen3", "samsung", "Phone", "Android"),
    ("Samsung Galaxy S24 Ultra", "14", "qualcomm-snapdragon-8gen3", "samsung", "Phone", "Android"),
    ("Samsung Galaxy S24+", "14", "qualcomm-snapdragon-8gen3", "samsung", "Phone", "Android"),
    ("Samsung Galaxy S25", "15", "qualcomm-snapdragon-8-elite-for-galaxy", "samsung", "Phone", "Android"),
    ("Samsung Galaxy S25 Ultra", "15", "qualcomm-snapdragon-8-elite-for-galaxy", "samsung", "Phone",
     "Android"),
    ("Samsung Galaxy S25+", "15", "qualcomm-snapdragon-8-elite-for-galaxy", "samsung", "Phone", "Android"),
    ("Snapdragon X Elite CRD", "11", "qualcomm-snapdragon-x-elite", "qualcomm", "Compute", "Windows"),
    ("Snapdragon X Plus 8-Core CRD", "11", "qualcomm-snapdragon-x-plus-8-core", "qualcomm", "Compute",
     "Windows"),
    ("Snapdragon 8 Elite QRD", "15", "qualcomm-snapdragon-8-elite", "qualcomm", "Phone", "Android"),
    ("Snapdragon 8 Elite Gen 5 QRD", "16", "qualcomm-snapdragon-8-elite-gen5", "qualcomm", "Phone", "Android"),
    ("Snapdragon 7 Gen 4 QRD", "15", "qualcomm-snapdragon-7gen4", "qualcomm", "Phone", "Android"),
    ("SA8295P ADP", "14", "qualcomm-sa8295p", "qualcomm", "Auto", "Android"),
    ("SA8775P ADP", "14", "qualcomm-sa8775p", "qualcomm", "Auto", "Android"),
    ("SA7255P ADP", "14", "qualcomm-sa7255p", "qualcomm", "Auto", "Android"),
    ("Dragonwing Q-6690 MTP", "15", "qualcomm-qcm6690", "qualcomm", "IoT", "Android"),
    ("QCS9075 (Proxy)", "14", "qualcomm-qcs9075-proxy", "qualcomm", "IoT", "Android"),
    ("QCS8275 (Proxy)", "14", "qualcomm-qcs8275-proxy", "qualcomm", "IoT", "Android"),
    ("Dragonwing RB3 Gen 2 Vision Kit", "1.6", "qualcomm-qcs6490", "qualcomm", "IoT", "Qualcomm Linux"),
    ("Dragonwing IQ-9075 EVK", "1.5", "qualcomm-qcs9075", "qualcomm", "IoT", "Qualcomm Linux"),
]

# Hexagon (HTP) architecture per chipset, from public chipset specs. Chipsets without an HTP are absent.
HEXAGON: dict[str, int] = {
    "qualcomm-snapdragon-845": 65,
    "qualcomm-snapdragon-855": 66,
    "qualcomm-snapdragon-730g": 66,
    "qualcomm-snapdragon-765g": 66,
    "qualcomm-snapdragon-865+": 66,
    "qualcomm-snapdragon-888": 68,
    "qualcomm-snapdragon-778g": 68,
    "qualcomm-snapdragon-8gen1": 69,
    "qualcomm-qcs8450-proxy": 69,
    "qualcomm-snapdragon-8gen2": 73,
    "qualcomm-qcs8550-proxy": 73,
    "qualcomm-snapdragon-x-elite": 73,
    "qualcomm-snapdragon-x-plus-8-core": 73,
    "qualcomm-sa8775p": 73,
    "qualcomm-qcs9075": 73,
    "qualcomm-qcs9075-proxy": 73,
    "qualcomm-snapdragon-7gen4": 73,
    "qualcomm-sa8295p": 68,
    "qualcomm-qcs6490": 68,
    "qualcomm-snapdragon-8gen3": 75,
    "qualcomm-snapdragon-8-elite": 79,
    "qualcomm-snapdragon-8-elite-for-galaxy": 79,
    "qualcomm-snapdragon-8-elite-gen5": 81,
}

# Inference-time factor relative to the Snapdragon 8 Gen 3 (Galaxy S24), calibrated on the MobileNet-v2
# medians of perf_mobilenet_v2.v0.46.1.yaml where the chipset is there, estimated elsewhere.
SPEED: dict[str, float] = {
    "qualcomm-snapdragon-8-elite-gen5": 0.58,
    "qualcomm-snapdragon-8-elite": 0.74,
    "qualcomm-snapdragon-8-elite-for-galaxy": 0.76,
    "qualcomm-snapdragon-8gen3": 1.0,
    "qualcomm-snapdragon-8gen2": 1.3,
    "qualcomm-qcs8550-proxy": 1.5,
    "qualcomm-snapdragon-x-elite": 1.5,
    "qualcomm-snapdragon-x-plus-8-core": 1.6,
    "qualcomm-snapdragon-7gen4": 1.8,
    "qualcomm-qcs9075": 1.9,
    "qualcomm-qcs9075-proxy": 1.9,
    "qualcomm-snapdragon-8gen1": 1.9,
    "qualcomm-sa8775p": 2.0,
    "qualcomm-sa8295p": 2.5,
    "qualcomm-snapdragon-888": 2.6,
    "qualcomm-qcs8450-proxy": 2.9,
    "qualcomm-snapdragon-778g": 3.4,
    "qualcomm-qcs8275-proxy": 4.5,
    "qualcomm-sa7255p": 4.5,
    "qualcomm-qcm6690": 4.5,
    "qualcomm-qcs6490": 5.0,
}
_DEFAULT_SPEED = 6.0  # older phones without a measured factor

_OS_ATTR = {"Android": "android", "Windows": "windows", "Qualcomm Linux": "linux"}
_FRAMEWORKS = {
    "Android": ("tflite", "qnn", "onnx"),
    "Windows": ("qnn", "onnx"),
    "Qualcomm Linux": ("tflite", "qnn"),
}


@dataclass(frozen=True)
class DeviceSpec:
    """One row of the device list: what `GET /api/v1/devices/` returns, plus simulation parameters."""

    name: str
    os: str
    chipset: str
    vendor: str = "qualcomm"
    form_factor: str = "Phone"
    os_family: str = "Android"
    extra_attributes: tuple[str, ...] = field(default=())
    frameworks: tuple[str, ...] | None = None  # overrides the OS family's frameworks (e.g. no "qnn")

    @property
    def hexagon(self) -> int | None:
        return HEXAGON.get(self.chipset)

    @property
    def has_npu(self) -> bool:
        return self.hexagon is not None and self.hexagon >= 66

    @property
    def speed_factor(self) -> float:
        return SPEED.get(self.chipset, _DEFAULT_SPEED)

    @property
    def attributes(self) -> list[str]:
        attrs = [
            f"chipset:{self.chipset}",
            f"os:{_OS_ATTR.get(self.os_family, self.os_family.lower().replace(' ', '-'))}",
            f"vendor:{self.vendor}",
            f"format:{self.form_factor.lower()}",
        ]
        frameworks = self.frameworks if self.frameworks is not None else _FRAMEWORKS.get(self.os_family, ("qnn",))
        attrs += [f"framework:{fw}" for fw in frameworks]
        if self.hexagon is not None:
            attrs.append(f"hexagon:v{self.hexagon}")
            if self.hexagon >= 73:
                attrs += ["htp-supports-fp16:true", "htp-supports-weight-sharing:true"]
        attrs += list(self.extra_attributes)
        return sorted(set(attrs))


# Peak-memory upper bounds AI Hub reports for one small model (MiB), by where it ran: 0-3 MiB on the compute
# and IoT boards, 327-362 MiB on phones, whatever the model's size (issue 17, from live AI Hub job pages).
SMALL_MEMORY_CHIPSETS = frozenset({"qualcomm-snapdragon-x-elite", "qualcomm-snapdragon-x-plus-8-core",
                                   "qualcomm-qcs8550-proxy", "qualcomm-qcs9075", "qualcomm-qcs9075-proxy"})


def family_members(devices: list[DeviceSpec], family: DeviceSpec) -> list[DeviceSpec]:
    """The physical devices a "(Family)" name stands for: same chipset, name starting with the family's stem."""
    stem = family.name.removesuffix(" (Family)")
    return [d for d in devices if d.name != family.name and d.name.startswith(stem) and d.chipset == family.chipset
            and not d.name.endswith("(Family)")]


def default_devices() -> list[DeviceSpec]:
    """The full catalogue, in the order AI Hub lists it (oldest first)."""
    return [DeviceSpec(name, os_, chip, vendor, ff, fam) for name, os_, chip, vendor, ff, fam in _TABLE]


def _version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def os_matches(device_os: str, query: str) -> bool:
    """AI Hub's OS filter: "" matches all, "14" matches exactly, "[12,14)" is a right-open interval."""
    if not query:
        return True
    if not query.startswith("["):
        return device_os == query
    low_text, _, high_text = query[1:].rstrip(")").partition(",")
    have = _version(device_os)
    if have is None:
        return False
    low, high = _version(low_text), _version(high_text)
    if low_text and (low is None or have < low):
        return False
    return not (high_text and (high is None or have >= high))


def filter_devices(devices: list[DeviceSpec], name: str, os: str, attributes: list[str]) -> list[DeviceSpec]:
    """Every device whose name matches exactly (if given), whose OS matches, and that has all attributes."""
    wanted = set(attributes)
    return [d for d in devices
            if (not name or d.name == name) and os_matches(d.os, os) and wanted <= set(d.attributes)]


def select_device(devices: list[DeviceSpec], name: str, os: str, attributes: list[str]) -> DeviceSpec | None:
    """`select=true`: one device, the newest OS among the matches (SDK `Device` docstring), or None."""
    matches = filter_devices(devices, name, os, attributes)
    if not matches:
        return None
    return max(matches, key=lambda d: (_version(d.os) or Version("0"), -matches.index(d)))

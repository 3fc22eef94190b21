"""The ``qemu`` backend: real VMs on Linux through the vms lifecycle (see docs/qemu.md).

Modules: ``backend`` (QemuBackend), ``instance`` (QemuInstance), ``options``, ``accel``
(accelerator choice), ``guest`` (the default guest builder, ``python -m vms_qemu.guest``),
``initramfs``, ``cmdline``, ``process``, ``vmdir``, ``qmp``, ``qga``, ``channel`` and
``testing`` (hooks for the vms_core testing kit).
"""

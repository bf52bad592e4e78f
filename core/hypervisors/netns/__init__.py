"""The netns hypervisor: VMs that are Linux network namespaces on this machine (``netns://local``),
each with a guest agent of ours that boots it as a GCE image would (hostname, address, ssh keys,
startup-script), on a bridge per network. It needs root and iproute2; see docs/operations.rst."""

from core.hypervisors.netns.driver import NetnsDriver

__all__ = ["NetnsDriver"]

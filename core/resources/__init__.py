"""The resource floor: stored GCE resources (store), their Operations, keyset-paged reads (queries)
and the call context every use case receives. Below the services and the system VMs, above models."""

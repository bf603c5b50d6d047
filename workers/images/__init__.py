"""The host's image store (workers.images.store), the users an image names
(workers.images.users) and what the control plane hands over for it
(workers.images.transfer). See docs/images.md."""

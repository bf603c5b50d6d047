"""Images on hosts: what each host's store holds, the admins' actions on it (pull, remove,
prune, load an uploaded archive) and the registry logins pulls use."""

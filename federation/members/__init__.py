"""Member Kubernetes clusters: their nodes join the pool, their pods run federation's work.

``sealing`` keeps kubeconfigs encrypted in the replicated state, ``kubeconfig`` reads one,
``translate`` holds the pure mapping between Kubernetes objects and federation records,
``connector`` watches one member cluster and acts on it, and ``manager`` is the leader loop
that runs a connector per registered cluster.
"""

"""The scaled-out layout (`make run-cluster`, `python -m bot run --replicas N`): several Rasa servers and
action servers and two web apps behind HAProxy, PostgreSQL for the store and conversations, a Redis of
the cluster's own for locks, channel state and the jobs lease. README, "Scaled out", has the diagram."""

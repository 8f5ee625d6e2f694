"""rasa-sdk custom actions: read the tracker, call bot services, dispatch responses."""

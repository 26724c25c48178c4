"""The alert stage: rules evaluated on the query layer, states, heals and notifications."""

"""Robot interface, serial backend, safety layer, control loop and mock robot (installed as metabot.hardware)."""

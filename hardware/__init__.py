"""metabot.hardware: Robot interface, serial backend, safety layer, control loop, cycle log.

The mock robot (mock_*.py) imports MuJoCo and is only imported on demand.
"""

"""The AMI side of the bridge, one module per concern:

state.py (live calls/queues/agents, no I/O) · handlers.py (event → state) · connection.py
(panoramisk session, reconnect/backoff, login) · publish.py (state → Redis) · actions.py
(console actions) · calls.py (finished call → CallRecord + ticket) · buffer.py (on-disk journal)
· replay.py (SIMULATION peer replaying captured Asterisk traffic). The process that wires them
is callcenter.bridge; web processes read the result through callcenter.live.
"""

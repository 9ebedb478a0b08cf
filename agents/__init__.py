"""The agents: one module per agent, what flows in and what flows out.

Layer 5 of 6: glue over ``services`` through the ``AgentContext`` protocol
(``agents.context``), never the runtime that implements it.
"""

print("platos-memory: not implemented yet")

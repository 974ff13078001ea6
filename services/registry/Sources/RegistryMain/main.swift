print("platos-registry: not implemented yet")

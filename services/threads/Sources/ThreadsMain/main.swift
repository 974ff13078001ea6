print("platos-threads: not implemented yet")

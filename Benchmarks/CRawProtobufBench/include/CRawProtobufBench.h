int platos_raw_placeholder(void);

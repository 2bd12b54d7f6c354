"""The command line: the parser, one `*_command` module per subcommand, and what they share (the
assembly of the instruments, the headless printer, standard output)."""

// platos: the command is in Sources/PlatosCLI (PlatosCommand.swift) so tests can drive it.
import PlatosCLI

@main
extension PlatosCommand {}

import RedressIntake

try await IntakeService.main()

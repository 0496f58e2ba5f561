import RedressSupervisor

try await SupervisorService.main()

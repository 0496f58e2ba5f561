import RedressCases

try await CasesService.main()

import RedressConsole

try await ConsoleService.main()

import RedressRouting

try await RoutingService.main()

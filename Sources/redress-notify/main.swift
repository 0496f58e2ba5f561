import RedressNotify

try await NotifyService.main()

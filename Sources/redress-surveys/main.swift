import RedressSurveys

try await SurveysService.main()

import Testing
@testable import RedressDomain

@Suite struct PersonalDataTests {
    @Test func masksPhoneKeepingPrefixAndLastFour() {
        #expect(PersonalData.maskPhone("13812345678") == "138****5678")
        #expect(PersonalData.maskPhone("12") == "12")
        #expect(PersonalData.maskPhone("12345") == "***45")
    }

    @Test func masksIDNumberHidingBirthDate() {
        #expect(PersonalData.maskIDNumber("11010519491231002X") == "110105********002X")
        #expect(PersonalData.maskIDNumber("123") == "***")
    }

    @Test func masksNameToFirstCharacter() {
        #expect(PersonalData.maskName("张三丰") == "张**")
        #expect(PersonalData.maskName("") == "")
    }

    @Test(arguments: ["13812345678", "19900000000", "15012345678"])
    func acceptsMainlandMobiles(_ phone: String) {
        #expect(PersonalData.isMainlandMobile(phone))
    }

    @Test(arguments: ["1381234567", "138123456789", "12812345678", "23812345678", "1381234567a", "+8613812345678", ""])
    func refusesOtherNumbers(_ phone: String) {
        #expect(!PersonalData.isMainlandMobile(phone))
    }

    @Test func checksResidentIDCheckDigit() {
        // GB 11643-1999 example numbers.
        #expect(PersonalData.isResidentID("11010519491231002X"))
        #expect(PersonalData.isResidentID("11010519491231002x"))
        #expect(PersonalData.isResidentID("440524188001010014"))
        #expect(!PersonalData.isResidentID("110105194912310021"))
        #expect(!PersonalData.isResidentID("11010519491231002"))
        #expect(!PersonalData.isResidentID("1101051949123100XX"))
    }

    @Test func scrubsNumbersInFreeText() {
        let text = "客户电话13812345678，身份证11010519491231002X，保单P123456"
        let scrubbed = PersonalData.scrub(text)
        #expect(!scrubbed.contains("13812345678"))
        #expect(!scrubbed.contains("11010519491231002X"))
        #expect(scrubbed.contains("138****5678"))
        #expect(scrubbed.contains("110105********002X"))
        #expect(scrubbed.contains("P123456"))
        #expect(PersonalData.scrub("nothing to hide 12345") == "nothing to hide 12345")
    }
}

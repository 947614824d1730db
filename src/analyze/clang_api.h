/* libclang, loaded when the analysis first needs it. Linking it into opus
 * would make every command pay for loading LLVM (tens of milliseconds of
 * relocations) though only analyze and build use it. Files that call
 * libclang include this header instead of <clang-c/Index.h>. */
#ifndef OPUS_ANALYZE_CLANG_API_H
#define OPUS_ANALYZE_CLANG_API_H

#include <clang-c/Index.h>

#define OPUS_CLANG_FUNCS(X)                                                                        \
	X(Cursor_getArgument)                                                                      \
	X(Cursor_getNumArguments)                                                                  \
	X(Cursor_getOffsetOfField)                                                                 \
	X(Cursor_getStorageClass)                                                                  \
	X(Cursor_getVarDeclInitializer)                                                            \
	X(Cursor_hasVarDeclGlobalStorage)                                                          \
	X(Cursor_isAnonymous)                                                                      \
	X(Cursor_isNull)                                                                           \
	X(File_isEqual)                                                                            \
	X(Type_getSizeOf)                                                                          \
	X(annotateTokens)                                                                          \
	X(createIndex)                                                                             \
	X(disposeDiagnostic)                                                                       \
	X(disposeIndex)                                                                            \
	X(disposeString)                                                                           \
	X(disposeTokens)                                                                           \
	X(disposeTranslationUnit)                                                                  \
	X(formatDiagnostic)                                                                        \
	X(getCString)                                                                              \
	X(getArrayElementType)                                                                     \
	X(getCanonicalType)                                                                        \
	X(getPointeeType)                                                                          \
	X(getCursorExtent)                                                                         \
	X(getCursorKind)                                                                           \
	X(getCursorLocation)                                                                       \
	X(getCursorReferenced)                                                                     \
	X(getCursorSemanticParent)                                                                 \
	X(getCursorSpelling)                                                                       \
	X(getCursorType)                                                                           \
	X(getCursorUSR)                                                                            \
	X(getDiagnostic)                                                                           \
	X(getDiagnosticLocation)                                                                   \
	X(getDiagnosticSeverity)                                                                   \
	X(getEnumConstantDeclValue)                                                                \
	X(getFile)                                                                                 \
	X(getFileContents)                                                                         \
	X(getFileLocation)                                                                         \
	X(getFileName)                                                                             \
	X(getInclusions)                                                                           \
	X(getClangVersion)                                                                         \
	X(getLocationForOffset)                                                                    \
	X(getNullCursor)                                                                           \
	X(getNumDiagnostics)                                                                       \
	X(getRange)                                                                                \
	X(getRangeEnd)                                                                             \
	X(getRangeStart)                                                                           \
	X(getSpellingLocation)                                                                     \
	X(getTokenKind)                                                                            \
	X(getTokenLocation)                                                                        \
	X(getTokenSpelling)                                                                        \
	X(getTranslationUnitCursor)                                                                \
	X(getTypeDeclaration)                                                                      \
	X(getTypeSpelling)                                                                         \
	X(getTypedefDeclUnderlyingType)                                                            \
	X(isCursorDefinition)                                                                      \
	X(isExpression)                                                                            \
	X(isStatement)                                                                             \
	X(parseTranslationUnit2)                                                                   \
	X(tokenize)                                                                                \
	X(visitChildren)

struct opus_clang {
#define OPUS_CLANG_SLOT(name) __typeof__(clang_##name) *name;
	OPUS_CLANG_FUNCS(OPUS_CLANG_SLOT)
#undef OPUS_CLANG_SLOT
};

/* The process's one copy of libclang, like the dynamic linker's. */
extern struct opus_clang opus_clang;

/* Load libclang (OPUS_LIBCLANG names another); 0 or -ENOENT with a message. */
int opus_clang_load(void);

#ifndef OPUS_CLANG_IMPL
#define clang_Cursor_getArgument	     opus_clang.Cursor_getArgument
#define clang_Cursor_getNumArguments	     opus_clang.Cursor_getNumArguments
#define clang_Cursor_getOffsetOfField	     opus_clang.Cursor_getOffsetOfField
#define clang_Cursor_getStorageClass	     opus_clang.Cursor_getStorageClass
#define clang_Cursor_getVarDeclInitializer   opus_clang.Cursor_getVarDeclInitializer
#define clang_Cursor_hasVarDeclGlobalStorage opus_clang.Cursor_hasVarDeclGlobalStorage
#define clang_Cursor_isAnonymous	     opus_clang.Cursor_isAnonymous
#define clang_Cursor_isNull		     opus_clang.Cursor_isNull
#define clang_File_isEqual		     opus_clang.File_isEqual
#define clang_Type_getSizeOf		     opus_clang.Type_getSizeOf
#define clang_annotateTokens		     opus_clang.annotateTokens
#define clang_createIndex		     opus_clang.createIndex
#define clang_disposeDiagnostic		     opus_clang.disposeDiagnostic
#define clang_disposeIndex		     opus_clang.disposeIndex
#define clang_disposeString		     opus_clang.disposeString
#define clang_disposeTokens		     opus_clang.disposeTokens
#define clang_disposeTranslationUnit	     opus_clang.disposeTranslationUnit
#define clang_formatDiagnostic		     opus_clang.formatDiagnostic
#define clang_getCString		     opus_clang.getCString
#define clang_getArrayElementType	     opus_clang.getArrayElementType
#define clang_getCanonicalType		     opus_clang.getCanonicalType
#define clang_getPointeeType		     opus_clang.getPointeeType
#define clang_getCursorExtent		     opus_clang.getCursorExtent
#define clang_getCursorKind		     opus_clang.getCursorKind
#define clang_getCursorLocation		     opus_clang.getCursorLocation
#define clang_getCursorReferenced	     opus_clang.getCursorReferenced
#define clang_getCursorSemanticParent	     opus_clang.getCursorSemanticParent
#define clang_getCursorSpelling		     opus_clang.getCursorSpelling
#define clang_getCursorType		     opus_clang.getCursorType
#define clang_getCursorUSR		     opus_clang.getCursorUSR
#define clang_getDiagnostic		     opus_clang.getDiagnostic
#define clang_getDiagnosticLocation	     opus_clang.getDiagnosticLocation
#define clang_getDiagnosticSeverity	     opus_clang.getDiagnosticSeverity
#define clang_getEnumConstantDeclValue	     opus_clang.getEnumConstantDeclValue
#define clang_getFile			     opus_clang.getFile
#define clang_getFileContents		     opus_clang.getFileContents
#define clang_getFileLocation		     opus_clang.getFileLocation
#define clang_getFileName		     opus_clang.getFileName
#define clang_getInclusions		     opus_clang.getInclusions
#define clang_getClangVersion		     opus_clang.getClangVersion
#define clang_getLocationForOffset	     opus_clang.getLocationForOffset
#define clang_getNullCursor		     opus_clang.getNullCursor
#define clang_getNumDiagnostics		     opus_clang.getNumDiagnostics
#define clang_getRange			     opus_clang.getRange
#define clang_getRangeEnd		     opus_clang.getRangeEnd
#define clang_getRangeStart		     opus_clang.getRangeStart
#define clang_getSpellingLocation	     opus_clang.getSpellingLocation
#define clang_getTokenKind		     opus_clang.getTokenKind
#define clang_getTokenLocation		     opus_clang.getTokenLocation
#define clang_getTokenSpelling		     opus_clang.getTokenSpelling
#define clang_getTranslationUnitCursor	     opus_clang.getTranslationUnitCursor
#define clang_getTypeDeclaration	     opus_clang.getTypeDeclaration
#define clang_getTypeSpelling		     opus_clang.getTypeSpelling
#define clang_getTypedefDeclUnderlyingType   opus_clang.getTypedefDeclUnderlyingType
#define clang_isCursorDefinition	     opus_clang.isCursorDefinition
#define clang_isExpression		     opus_clang.isExpression
#define clang_isStatement		     opus_clang.isStatement
#define clang_parseTranslationUnit2	     opus_clang.parseTranslationUnit2
#define clang_tokenize			     opus_clang.tokenize
#define clang_visitChildren		     opus_clang.visitChildren
#endif

#endif
